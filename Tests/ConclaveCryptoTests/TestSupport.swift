import ConclaveCrypto

func hex(_ s: String) -> [UInt8] { Hex.decode(s)! }

@_exported import ConclaveTestSupport
