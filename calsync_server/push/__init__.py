"""Provider-neutral push: subscriptions kept, webhooks read by each provider's parser."""
