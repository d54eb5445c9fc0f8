"""The transfer engine and its HTTP plumbing; knows nothing about hubs."""
