from synalign.cli import main

main()
