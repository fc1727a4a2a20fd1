"""Services: what the operator does, called by the kopf handlers, calling storage."""
