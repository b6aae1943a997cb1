# plugin.sh - devstack entry point of the migration-conductor plugin
#
# devstack sources this file with the mode and the phase as arguments
# (``stack install``, ``stack post-config``, ``stack extra``, ``unstack``,
# ``clean``). It only dispatches them to the functions of
# lib/migration-conductor; settings has already been sourced.

# Save trace setting
_XTRACE_MC_PLUGIN=$(set +o | grep xtrace)
set -o xtrace

source $MIGRATION_CONDUCTOR_DIR/devstack/lib/migration-conductor

if is_service_enabled mc-conductor mc-agent; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        echo_summary "Installing migration-conductor"
        install_migration_conductor

    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        echo_summary "Configuring migration-conductor"
        configure_migration_conductor

    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        echo_summary "Initializing and starting migration-conductor"
        init_migration_conductor
        start_migration_conductor
    fi

    if [[ "$1" == "unstack" ]]; then
        stop_migration_conductor
    fi

    if [[ "$1" == "clean" ]]; then
        cleanup_migration_conductor
    fi
fi

# Restore xtrace
$_XTRACE_MC_PLUGIN
