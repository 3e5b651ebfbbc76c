"""CAM from feature maps x FC weights equals gradient-based Grad-CAM of a GAP+FC head."""
import numpy as np

from conftest import build_model_graph, new_session
from models.spec import ModelSpec
from utils.evaluation.cam import class_activation_maps
from utils.compat import tf


def test_cam_from_weights_equals_gradcam_of_the_class_logit():
    spec = ModelSpec(arch="vgg_gap", method="CAM", num_classes=6, image_size=64, width_multiplier=0.125)
    graph, _, inputs, _ = build_model_graph(spec, is_training=False)
    images = np.random.RandomState(0).randint(0, 256, (2, 64, 64, 3)).astype(np.uint8)
    classes = np.array([1, 4])
    with graph.as_default(), new_session(graph) as sess:
        sess.run(tf.global_variables_initializer())
        features = graph.get_tensor_by_name("new/output:0")  # the head map the logits depend on
        logits = graph.get_tensor_by_name("logits_3x3:0")
        class_logit = tf.reduce_sum(tf.gather(logits, inputs[1], axis=1, batch_dims=1))
        gradients = tf.gradients(class_logit, features)[0]
        alpha = tf.reduce_mean(gradients, axis=[1, 2], keepdims=True)   # Grad-CAM channel weights
        gradcam = tf.reduce_sum(alpha * features, axis=3)
        fmap, weights, reference = sess.run(
            [features, "fc_weights_3x3:0", gradcam], {inputs[0]: images, inputs[1]: classes})
    cams = class_activation_maps(fmap, weights, classes)
    height, width = fmap.shape[1:3]
    # d logit_c / dF_k(i,j) = w_kc / (H W): Grad-CAM is the CAM divided by the map's area.
    np.testing.assert_allclose(cams, reference * height * width, rtol=1e-4, atol=1e-6)
