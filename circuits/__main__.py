from circuits.cli import main

raise SystemExit(main())
