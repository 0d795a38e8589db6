from tango_ci.cli import main

main()
