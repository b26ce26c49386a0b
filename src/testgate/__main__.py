from testgate.cli.main import main

main()
