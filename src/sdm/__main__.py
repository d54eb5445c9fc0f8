from sdm.cli import main

main()
