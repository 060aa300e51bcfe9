"""Order parsing and product matching for WhatsApp messages."""
