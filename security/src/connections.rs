//! Connection caps (total and per client IP) and header, body and idle timeouts of the HTTP servers.
