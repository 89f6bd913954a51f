"""What calls cost in tokens: counted from what each provider reports."""
