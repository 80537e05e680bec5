"""What an IT administrator does to a property: connect it, watch its status, disconnect it."""
