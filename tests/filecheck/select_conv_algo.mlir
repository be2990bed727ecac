// RUN: nnc-opt --split-input-file %s -p 'select-conv-algo{algo=winograd4}' | filecheck %s --check-prefix=W4
// RUN: nnc-opt --split-input-file %s -p 'select-conv-algo{algo=im2col}' | filecheck %s --check-prefix=IM
// RUN: nnc-opt --split-input-file %s -p 'select-conv-algo{algo=fft}' | filecheck %s --check-prefix=FFT

// Forced algorithms: winograd4 / fft where they apply (stride 1), im2col everywhere; a
// conv they do not apply to is tagged direct.

// W4-LABEL: func.func @main
// W4:         "nn.winograd_conv"(%0, %{{.*}}, %{{.*}}) <{tile = 4 : i64
// IM-LABEL: func.func @main
// IM:         "nn.conv"(%0, %1, %2) {{.*}} {nn.conv_algo = "im2col"}
// FFT-LABEL: func.func @main
// FFT:        "nn.fft_conv"

builtin.module {
  func.func @main(%0: tensor<1x1x4x4xf32>) -> tensor<1x1x4x4xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [1, 1, 3, 3], "0x0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F">}> : () -> tensor<1x1x3x3xf32>
    %2 = "nn.constant"() <{value = #nn.weight<"f32", [1], "0x0000803F">}> : () -> tensor<1xf32>
    %3 = "nn.conv"(%0, %1, %2) <{strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, group = 1 : i64, activation = "relu", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64, operandSegmentSizes = array<i32: 1, 1, 1, 0>}> : (tensor<1x1x4x4xf32>, tensor<1x1x3x3xf32>, tensor<1xf32>) -> tensor<1x1x4x4xf32>
    func.return %3 : tensor<1x1x4x4xf32>
  }
}

// -----

// W4-LABEL: func.func @main
// W4:         "nn.conv"(%0, %1, %2) {{.*}} {nn.conv_algo = "direct"}
// IM-LABEL: func.func @main
// IM:         "nn.conv"(%0, %1, %2) {{.*}} {nn.conv_algo = "im2col"}
// FFT-LABEL: func.func @main
// FFT:        "nn.conv"(%0, %1, %2) {{.*}} {nn.conv_algo = "direct"}

builtin.module {
  func.func @main(%0: tensor<1x1x5x5xf32>) -> tensor<1x1x2x2xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [1, 1, 3, 3], "0x0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F">}> : () -> tensor<1x1x3x3xf32>
    %2 = "nn.constant"() <{value = #nn.weight<"f32", [1], "0x0000803F">}> : () -> tensor<1xf32>
    %3 = "nn.conv"(%0, %1, %2) <{strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, group = 1 : i64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64, operandSegmentSizes = array<i32: 1, 1, 1, 0>}> : (tensor<1x1x5x5xf32>, tensor<1x1x3x3xf32>, tensor<1xf32>) -> tensor<1x1x2x2xf32>
    func.return %3 : tensor<1x1x2x2xf32>
  }
}
