"""Image pipeline: decode → segment → face crop → encode."""
