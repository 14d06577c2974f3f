"""Who is calling, and what they may see: bearer tokens, collection policies, protected fields."""
