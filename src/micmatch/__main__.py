from micmatch.cli import main

main()
