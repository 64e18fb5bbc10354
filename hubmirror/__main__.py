from hubmirror.console import main

main()
