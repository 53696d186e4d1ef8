export { Tensor } from "@ldm/core/tensor"; 
