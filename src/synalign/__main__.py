from synalign.cli.app import main

main()
