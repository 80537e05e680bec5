from hostpms_pipeline.cli.commands import main

main()
