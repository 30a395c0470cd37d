package proxy

// ParseSockaddr exposes the decoder of SO_ORIGINAL_DST answers.
var ParseSockaddr = parseSockaddr
