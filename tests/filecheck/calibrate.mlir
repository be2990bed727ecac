// RUN: nnc-opt %s -p calibrate | filecheck %s --check-prefix=NODATA
// RUN: python -c "import numpy as np; np.savez('%t.npz', x=np.array([[[-1.0, 0.5], [2.0, -3.0]], [[0.25, 4.0], [1.0, 1.0]]], np.float32))"
// RUN: nnc-opt %s -p 'calibrate{data="%t.npz"}' | filecheck %s
// RUN: nnc-opt %s -p 'calibrate{data="%t.npz" method=percentile}' | filecheck %s --check-prefix=PCT

// Two calibration samples of x (1x2x2 each): min -3, max 4; relu(x) in [0, 4].
// percentile (99.99%) clips the input slightly; the model's output keeps minmax.

// NODATA-NOT: nn.range
// NODATA-NOT: nn.arg_ranges

// CHECK:       nn.arg_ranges = [array<f64: -3.000000e+00, 4.000000e+00>]
// CHECK:       "nn.relu"(%0) {nn.range = array<f64: 0.000000e+00, 4.000000e+00>}

// PCT:         nn.arg_ranges = [array<f64: -2.99
// PCT:         "nn.relu"(%0) {nn.range = array<f64: 0.000000e+00, 4.000000e+00>}

builtin.module {
  func.func @main(%0: tensor<1x2x2xf32>) -> tensor<1x2x2xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.relu"(%0) : (tensor<1x2x2xf32>) -> tensor<1x2x2xf32>
    func.return %1 : tensor<1x2x2xf32>
  }
}
