from hostpms_pipeline.cli.entry import main

main()
