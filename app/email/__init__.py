"""Email: rendered in the tenant's branding, stored, then delivered from the `emails` queue."""
