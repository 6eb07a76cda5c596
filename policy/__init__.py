"""The llm-marketplace-dr CrossGuard pack (`pulumi preview --policy-pack policy`)."""
