# Memory bomb: grow until the address-space limit says no.
chunks = []
while True:
    chunks.append(bytearray(16 << 20))
