// The shared test support (relay starter, waiters, certificates, ports, paths) for every file
// of this target.
@_exported import ConclaveTestSupport
