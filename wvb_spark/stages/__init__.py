"""One module per `wvb` command: options (add_arguments) and the run. A stage never
imports another stage; what two share lives in core, transforms or compute."""
