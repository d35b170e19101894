from lvm_studio.cli import main

raise SystemExit(main())
