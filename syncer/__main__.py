from syncer.supervise import main

main()
