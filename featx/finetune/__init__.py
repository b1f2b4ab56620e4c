"""Fine-tuning: freezing levels, augmentation, the training loop, Grad-CAM and export as a backbone.

torch is imported inside these modules only; ``featx fit`` never imports them.
"""
