from box2mask.cli import main

main()
