// Package api is the node's local API: JSON over HTTP on a unix socket.
//
// The socket is the only way in, and only root may use it: its directory is
// 0700, the socket 0600, and every connection's peer credentials
// (SO_PEERCRED) are checked for uid 0 before a request is read, so a
// permissive umask or a bind-mounted socket cannot open it to others.
package api
