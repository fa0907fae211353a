from rankexp.cli import main

main()
