from tremor.cli import main

main()
