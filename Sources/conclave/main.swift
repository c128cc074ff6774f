print("conclave")
