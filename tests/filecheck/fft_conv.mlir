// RUN: nnc-opt --split-input-file %s -p fft-conv | filecheck %s
// RUN: nnc-opt --split-input-file %s -p 'fft-conv{min-kernel=3}' | filecheck %s --check-prefix=K3

// 3x3 conv: below the default min-kernel (5), unchanged; with min-kernel=3 it becomes an
// FFT conv over the 6x6 padded plane: weight conj(rfft2(w)) as (M, C, 2 = re/im,
// 6 * (6/2 + 1) = 24); its DC term is the sum of the nine ones: 9.0 = 0x41100000.

// CHECK-LABEL: func.func @main
// CHECK:         "nn.conv"(%0, %1, %2)
// CHECK-NOT:     nn.fft_conv

// K3-LABEL: func.func @main
// K3-NEXT:    %[[B:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [1], "0x0000803F">}>
// K3-NEXT:    %[[W:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [1, 1, 2, 24], "0x00001041
// K3-NEXT:    %[[Y:.*]] = "nn.fft_conv"(%0, %[[W]], %[[B]]) <{kernel = array<i64: 3, 3>, pads = array<i64: 1, 1, 1, 1>, fft_shape = array<i64: 6, 6>, activation = "relu"
// K3-NEXT:    func.return %[[Y]]

builtin.module {
  func.func @main(%0: tensor<1x1x4x4xf32>) -> tensor<1x1x4x4xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [1, 1, 3, 3], "0x0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F">}> : () -> tensor<1x1x3x3xf32>
    %2 = "nn.constant"() <{value = #nn.weight<"f32", [1], "0x0000803F">}> : () -> tensor<1xf32>
    %3 = "nn.conv"(%0, %1, %2) <{strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, group = 1 : i64, activation = "relu", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64, operandSegmentSizes = array<i32: 1, 1, 1, 0>}> : (tensor<1x1x4x4xf32>, tensor<1x1x3x3xf32>, tensor<1xf32>) -> tensor<1x1x4x4xf32>
    func.return %3 : tensor<1x1x4x4xf32>
  }
}

// -----

// Stride 2: unchanged with any min-kernel.
// CHECK-LABEL: func.func @main
// CHECK:         "nn.conv"(%0, %1, %2) <{strides = array<i64: 2, 2>
// CHECK-NOT:     nn.fft_conv
// K3-LABEL:    func.func @main
// K3-NOT:      nn.fft_conv

builtin.module {
  func.func @main(%0: tensor<1x1x5x5xf32>) -> tensor<1x1x2x2xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [1, 1, 3, 3], "0x0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F">}> : () -> tensor<1x1x3x3xf32>
    %2 = "nn.constant"() <{value = #nn.weight<"f32", [1], "0x0000803F">}> : () -> tensor<1xf32>
    %3 = "nn.conv"(%0, %1, %2) <{strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, group = 1 : i64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64, operandSegmentSizes = array<i32: 1, 1, 1, 0>}> : (tensor<1x1x5x5xf32>, tensor<1x1x3x3xf32>, tensor<1xf32>) -> tensor<1x1x2x2xf32>
    func.return %3 : tensor<1x1x2x2xf32>
  }
}

// -----

// 5x5 kernel, pads 2 on a 4x4 input: FFT over 8x8, 8 * 5 = 40 frequencies, DC 25.0.
// CHECK-LABEL: func.func @main
// CHECK:         %[[W:.*]] = "nn.constant"() <{value = #nn.weight<"f32", [1, 1, 2, 40], "0x0000C841
// CHECK-NEXT:    "nn.fft_conv"(%0, %[[W]], %{{.*}}) <{kernel = array<i64: 5, 5>, pads = array<i64: 2, 2, 2, 2>, fft_shape = array<i64: 8, 8>
// CHECK-NOT:     "nn.conv"
// K3-LABEL:    func.func @main
// K3:          nn.fft_conv

builtin.module {
  func.func @main(%0: tensor<1x1x4x4xf32>) -> tensor<1x1x4x4xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [1, 1, 5, 5], "0x0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F0000803F">}> : () -> tensor<1x1x5x5xf32>
    %2 = "nn.constant"() <{value = #nn.weight<"f32", [1], "0x0000803F">}> : () -> tensor<1xf32>
    %3 = "nn.conv"(%0, %1, %2) <{strides = array<i64: 1, 1>, pads = array<i64: 2, 2, 2, 2>, dilations = array<i64: 1, 1>, group = 1 : i64, activation = "none", act_alpha = 0.000000e+00 : f64, act_beta = 0.000000e+00 : f64, operandSegmentSizes = array<i32: 1, 1, 1, 0>}> : (tensor<1x1x4x4xf32>, tensor<1x1x5x5xf32>, tensor<1xf32>) -> tensor<1x1x4x4xf32>
    func.return %3 : tensor<1x1x4x4xf32>
  }
}
