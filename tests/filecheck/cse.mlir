// RUN: nnc-opt --split-input-file %s -p cse | filecheck %s

// Two constants with equal bytes merge, then the two adds, then the two relus.
// CHECK-LABEL: func.func @main
// CHECK-NEXT:    %[[K:.*]] = "nn.constant"
// CHECK-NEXT:    %[[A:.*]] = "nn.add"(%0, %[[K]])
// CHECK-NEXT:    %[[R:.*]] = "nn.relu"(%[[A]])
// CHECK-NEXT:    %[[M:.*]] = "nn.mul"(%[[R]], %[[R]])
// CHECK-NEXT:    func.return %[[M]]

builtin.module {
  func.func @main(%0: tensor<2x3xf32>) -> tensor<2x3xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [3], "0x0000803F0000004000004040">}> : () -> tensor<3xf32>
    %2 = "nn.constant"() <{value = #nn.weight<"f32", [3], "0x0000803F0000004000004040">}> : () -> tensor<3xf32>
    %3 = "nn.add"(%0, %1) : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %4 = "nn.add"(%0, %2) : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %5 = "nn.relu"(%3) : (tensor<2x3xf32>) -> tensor<2x3xf32>
    %6 = "nn.relu"(%4) : (tensor<2x3xf32>) -> tensor<2x3xf32>
    %7 = "nn.mul"(%5, %6) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
    func.return %7 : tensor<2x3xf32>
  }
}

// -----

// Negative: different constant bytes and different clip bounds: nothing merges.
// CHECK-LABEL: func.func @main
// CHECK-COUNT-2: "nn.constant"
// CHECK-COUNT-2: "nn.add"
// CHECK-COUNT-2: "nn.clip"

builtin.module {
  func.func @main(%0: tensor<2x3xf32>) -> tensor<2x3xf32> attributes {nn.input_names = ["x"], nn.output_names = ["y"]} {
    %1 = "nn.constant"() <{value = #nn.weight<"f32", [3], "0x0000803F0000004000004040">}> : () -> tensor<3xf32>
    %2 = "nn.constant"() <{value = #nn.weight<"f32", [3], "0x0000803F0000004000008040">}> : () -> tensor<3xf32>
    %3 = "nn.add"(%0, %1) : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %4 = "nn.add"(%0, %2) : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32>
    %5 = "nn.clip"(%3) <{min = 0.000000e+00 : f64, max = 6.000000e+00 : f64}> : (tensor<2x3xf32>) -> tensor<2x3xf32>
    %6 = "nn.clip"(%4) <{min = 0.000000e+00 : f64, max = 1.000000e+00 : f64}> : (tensor<2x3xf32>) -> tensor<2x3xf32>
    %7 = "nn.mul"(%5, %6) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32>
    func.return %7 : tensor<2x3xf32>
  }
}
