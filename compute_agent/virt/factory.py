"""Build an agent's virt driver from configuration (one place for the choice)."""

from compute_agent.virt import simulated

SIMULATED_URI = simulated.SIMULATED_URI


def load_driver(conf, host, uri=None):
    """Return the driver for ``host``.

    :param uri: the libvirt URI for this agent; ``simulated://`` selects the simulated
        driver. Defaults to ``[libvirt] connection_uri`` with ``[agent] virt_driver``.
    """
    if uri is None:
        if conf.agent.virt_driver == 'simulated':
            uri = SIMULATED_URI
        else:
            uri = conf.libvirt.connection_uri
    if uri.startswith(SIMULATED_URI):
        return simulated.SimulatedDriver(host, conf)
    # Imported here so that a simulated-only process never needs libvirt-python.
    from compute_agent.virt.libvirt import driver as libvirt_driver
    # The advertised URI option describes the configured connection, not a per-agent
    # URI of the all-in-one mode.
    advertised = (conf.agent.advertised_libvirt_uri
                  if uri == conf.libvirt.connection_uri else None)
    return libvirt_driver.LibvirtDriver(
        host, uri, connect_timeout=conf.libvirt.connect_timeout,
        advertised_uri=advertised, trust_shared_pools=conf.libvirt.trust_shared_pools,
        limit_postcopy_bandwidth=conf.libvirt.limit_postcopy_bandwidth)
