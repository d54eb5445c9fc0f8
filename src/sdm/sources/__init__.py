"""Sources turn a chosen file into something the transfer engine can fetch."""
