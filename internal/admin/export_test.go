package admin

import "time"

// SetPromoteTimeout shortens how long s lets a promotion take.
func SetPromoteTimeout(s *Server, d time.Duration) { s.promoteTimeout = d }
