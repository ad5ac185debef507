from metadata_gateway.cli import main

raise SystemExit(main())
