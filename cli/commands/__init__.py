"""One module per family of verbs; each exposes SPECS (name -> flags.Command) and a handler
`name(ctx, opts, args, spec) -> exit status` per spec."""
