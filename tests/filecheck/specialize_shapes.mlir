// RUN: nnc-opt --split-input-file --verify-diagnostics %s -p specialize-shapes | filecheck %s --check-prefix=B1
// RUN: nnc-opt --split-input-file --verify-diagnostics %s -p 'specialize-shapes{batch=4}' | filecheck %s --check-prefix=B4

// The dynamic batch becomes 1 (default) or 4; conv and reshape results are re-inferred.
// B1-LABEL: func.func @main(%0: tensor<1x2x3x3xf32>) -> tensor<1x36xf32>
// B1:         "nn.conv"{{.*}} -> tensor<1x4x3x3xf32>
// B1:         "nn.reshape"{{.*}} -> tensor<1x36xf32>
// B4-LABEL: func.func @main(%0: tensor<4x2x3x3xf32>) -> tensor<4x36xf32>
// B4:         "nn.conv"{{.*}} -> tensor<4x4x3x3xf32>
// B4:         "nn.reshape"{{.*}} -> tensor<4x36xf32>

builtin.module {
  func.func @main(%0: tensor<?x2x3x3xf32>) -> tensor<?x36xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [4, 2, 1, 1], "0x0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F">}> : () -> tensor<4x2x1x1xf32>
    %2 = "nn.conv"(%0, %1) <{strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, group = 1 : i64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64, operandSegmentSizes = array<i32: 1, 1, 0, 0>}> : (tensor<?x2x3x3xf32>, tensor<4x2x1x1xf32>) -> tensor<?x4x3x3xf32>
    %3 = "nn.reshape"(%2) <{shape = array<i64: -1, 36>}> : (tensor<?x4x3x3xf32>) -> tensor<?x36xf32>
    func.return %3 : tensor<?x36xf32>
  }
}

// -----

// Already static: unchanged.
// B1-LABEL: func.func @main(%0: tensor<2x3xf32>) -> tensor<2x3xf32>
// B4-LABEL: func.func @main(%0: tensor<2x3xf32>) -> tensor<2x3xf32>

builtin.module {
  func.func @main(%0: tensor<2x3xf32>) -> tensor<2x3xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.relu"(%0) : (tensor<2x3xf32>) -> tensor<2x3xf32>
    func.return %1 : tensor<2x3xf32>
  }
}

// -----

// Negative: a dynamic non-batch dimension is an error; the IR is not touched.
// B1: error: specialize-shapes: input 'x' has dynamic dimension 1; only the batch dimension (0) can be specialized
// B4: error: specialize-shapes: input 'x' has dynamic dimension 1

builtin.module {
  func.func @main(%0: tensor<1x?xf32>) -> tensor<1x?xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.relu"(%0) : (tensor<1x?xf32>) -> tensor<1x?xf32>
    func.return %1 : tensor<1x?xf32>
  }
}
