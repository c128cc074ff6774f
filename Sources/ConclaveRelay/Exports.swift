// `RelayConfiguration` lives in its own module (so the config-file fuzz target can link
// it without the network stack); users of the relay get it with `import ConclaveRelay`.
@_exported import ConclaveRelayConfiguration
