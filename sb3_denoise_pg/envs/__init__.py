from sb3_denoise_pg.envs.linear_gaussian import LinearGaussianWorld

__all__ = ["LinearGaussianWorld"]
