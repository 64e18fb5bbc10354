from hubmirror.cli import main

main()
