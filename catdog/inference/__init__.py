"""Using a trained run: answers, evaluation, top losses, Grad-CAM, feature maps, unfamiliarity, exports."""
