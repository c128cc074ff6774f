print("conclave-relay")
