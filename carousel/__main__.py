from carousel.cli import main

main()
