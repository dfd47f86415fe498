from sb3_denoise_pg.denoise_pg.denoise_pg import DenoisePG
from sb3_denoise_pg.denoise_pg.policies import CnnPolicy, DenoisePGPolicy, MlpPolicy, MultiInputPolicy

__all__ = ["CnnPolicy", "DenoisePG", "DenoisePGPolicy", "MlpPolicy", "MultiInputPolicy"]
