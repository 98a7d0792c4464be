"""Operations on the whole platform, as library functions returning typed results: bring it up stage by stage
(``bring_up``), read its health on one screen (``status``), stop all of it in order (``down``). The CLI only
parses arguments and renders what these return; like the CLI, this layer may drive the local stack."""
