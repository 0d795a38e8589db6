"""Object detection: ultralytics YOLO families, one post-processing for every backend, mAP."""
