package proxy

// ParseSockaddr exposes the decoder of SO_ORIGINAL_DST answers.
var ParseSockaddr = parseSockaddr

// InstallTransparentRoutes exposes the install of the reply routing, which
// the proxy repeats for a namespace it serves again (a restarted node).
var InstallTransparentRoutes = installTransparentRoutes
