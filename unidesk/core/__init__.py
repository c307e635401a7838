"""The UniDesk server core: API, scheduler, node registry, ingress, event bus."""
