// RUN: nnc-opt --split-input-file %s -p fuse-gelu | filecheck %s

// Exact GELU as torch.onnx writes it: mul(mul(x, 1 + erf(x / sqrt2)), 0.5) -> nn.gelu.
// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[Y:.*]] = "nn.gelu"(%0)
// CHECK-NEXT:    func.return %[[Y]]

builtin.module {
  func.func @main(%0: tensor<2x3xf32>) -> tensor<2x3xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [], "0xF304B53F">}> : () -> tensor<f32>
    %2 = "nn.div"(%0, %1) : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
    %3 = "nn.erf"(%2) : (tensor<2x3xf32>) -> tensor<2x3xf32>
    %4 = "nn.constant"() <{value = #nn.weight<"f32", [], "0x0000803F">}> : () -> tensor<f32>
    %5 = "nn.add"(%3, %4) : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
    %6 = "nn.mul"(%0, %5) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
    %7 = "nn.constant"() <{value = #nn.weight<"f32", [], "0x0000003F">}> : () -> tensor<f32>
    %8 = "nn.mul"(%6, %7) : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
    func.return %8 : tensor<2x3xf32>
  }
}


// -----

// Tanh approximation with pow(x, 3), 0.5 applied to x first -> nn.gelu_tanh.
// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[Y:.*]] = "nn.gelu_tanh"(%0)
// CHECK-NEXT:    func.return %[[Y]]

builtin.module {
  func.func @main(%0: tensor<4xf32>) -> tensor<4xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [], "0x00004040">}> : () -> tensor<f32>
    %2 = "nn.pow"(%0, %1) : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
    %3 = "nn.constant"() <{value = #nn.weight<"f32", [], "0x1327373D">}> : () -> tensor<f32>
    %4 = "nn.mul"(%3, %2) : (tensor<f32>, tensor<4xf32>) -> tensor<4xf32>
    %5 = "nn.add"(%0, %4) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
    %6 = "nn.constant"() <{value = #nn.weight<"f32", [], "0x2A424C3F">}> : () -> tensor<f32>
    %7 = "nn.mul"(%5, %6) : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
    %8 = "nn.tanh"(%7) : (tensor<4xf32>) -> tensor<4xf32>
    %9 = "nn.constant"() <{value = #nn.weight<"f32", [], "0x0000803F">}> : () -> tensor<f32>
    %10 = "nn.add"(%9, %8) : (tensor<f32>, tensor<4xf32>) -> tensor<4xf32>
    %11 = "nn.constant"() <{value = #nn.weight<"f32", [], "0x0000003F">}> : () -> tensor<f32>
    %12 = "nn.mul"(%0, %11) : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
    %13 = "nn.mul"(%12, %10) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
    func.return %13 : tensor<4xf32>
  }
}


// -----

// The erf result is also a model output: the chain stays as it is.
// CHECK-LABEL: func.func @main
// CHECK:         "nn.erf"
// CHECK:         "nn.mul"
// CHECK-NOT:     "nn.gelu"

builtin.module {
  func.func @main(%0: tensor<2x3xf32>) -> (tensor<2x3xf32>, tensor<2x3xf32>) attributes {nn.input_names = ["x"], nn.output_names = ["y", "e"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [], "0xF304B53F">}> : () -> tensor<f32>
    %2 = "nn.div"(%0, %1) : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
    %3 = "nn.erf"(%2) : (tensor<2x3xf32>) -> tensor<2x3xf32>
    %4 = "nn.constant"() <{value = #nn.weight<"f32", [], "0x0000803F">}> : () -> tensor<f32>
    %5 = "nn.add"(%3, %4) : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
    %6 = "nn.mul"(%0, %5) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
    %7 = "nn.constant"() <{value = #nn.weight<"f32", [], "0x0000003F">}> : () -> tensor<f32>
    %8 = "nn.mul"(%6, %7) : (tensor<2x3xf32>, tensor<f32>) -> tensor<2x3xf32>
    func.return %8, %3 : tensor<2x3xf32>, tensor<2x3xf32>
  }
}

